"""Image intake and video rendering for the simulated model.

`images` validates untrusted upload bytes (Pillow only); `video` renders the MP4 (PyAV + Pillow).
They are separate modules so that code needing only image checks does not import PyAV.
"""
