"""Public testing kit for codexd and for programs that embed it (like ``trio.testing``)."""
