"""Image intake and video rendering for the simulated model.

`formats` tells PNG, JPEG and WebP apart by their magic bytes (standard library only, for the API);
`images` validates untrusted upload bytes (Pillow), `isolation` decodes them in a child under a time
budget; `video` renders the MP4 (PyAV + Pillow). Pillow and PyAV come from MediaLayer, which only
ProcessorFunction carries.
"""
