"""Sizes of the profiling tests' tiny models (a module of its own, see tests/ui/ui_helpers.py)."""

TINY_SPARSE4D = dict(input_size=(64, 32), num_anchor=32, num_temp_instances=16, num_decoder=2, embed_dims=64,
                     fpn_out_channels=64, anchor_embed_dims=(32, 8, 8, 16), ffn_channels=128, num_output=16,
                     num_levels=2, num_depth_layers=1, num_heads=4, num_groups=4)
DETECTNET_SIZE = (64, 32)
