"""The runtime audit engine: run a real model with hooks and check what its norms did.

Nothing here imports torch at package import time: ``normlint.runtime.api`` and the CLI
callback import the torch-using submodules when an audit actually runs.
"""
