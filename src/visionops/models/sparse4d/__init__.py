"""Sparse4D v3 (TAO variant): one idea per module; see models/sparse4d/model.py for the assembled network."""
