"""napari integration: reader, writer, sample data and dock widgets (thin Qt over the core)."""
