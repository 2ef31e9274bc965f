"""dlcamp: the deep-learning curriculum made runnable.

Layers (imports flow downward only): ops -> nn -> optim -> models -> data -> tasks ->
metrics/report -> recipes/cli. See DESIGN.md in the project's shared folder.
"""

__version__ = "0.1.0"
