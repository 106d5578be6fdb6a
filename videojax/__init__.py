"""videojax: video classification from frozen per-frame CNN features.

Shape key used in every docstring: b batch, t time, h height, w width,
c channels, d feature width, k classes, n examples.
"""
