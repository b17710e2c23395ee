"""``python -m sod100k.web [--vendor]``: where the onnxruntime-web files are, or vendor them."""

import sys

from sod100k.web.runtime import main

sys.exit(main())
