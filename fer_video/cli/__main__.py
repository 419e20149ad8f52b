"""`python -m fer_video.cli`: the `fer-video` command."""

import sys

from fer_video.cli import main

sys.exit(main())
