"""Data: the raw MTMC 2025 format (schema, reader, writer, validator), video/depth I/O, the synthetic
warehouse renderer and the download stage."""
