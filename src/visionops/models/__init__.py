"""Networks of the two perception models: DetectNet_v2 (TAO GridBox) and Sparse4D, and their shared parts
(``backbones``)."""
