"""What runs in a model's process (and the fork server it is forked from), under torch: the
warm-up, the model's build, the capture of every submodule's inputs and the walk that exports them.
The torch-free parent in :mod:`exportwatch.sweep` starts these processes by module name and
never imports this package."""
