"""Per-layer work distributed over Dask.

* :mod:`.distributed` - mapping a per-layer task over one process, a LocalCluster or any scheduler;
* :mod:`.distributed_tasks` - the per-layer classification and reconstruction tasks;
* :mod:`.slurm` - Dask workers as SLURM jobs.
"""
