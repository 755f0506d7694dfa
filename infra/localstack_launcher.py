"""Starts LocalStack's runtime in host mode; run by .venv-localstack's Python 3.13, not by the product's.

`python infra/localstack_launcher.py S3_STORAGE_DIR PARENT_PID`:
- LocalStack's S3 keeps object data in a folder fixed in its code (/tmp/localstack-s3-storage), shared by every
  instance on the machine and left behind; this puts it under the stack's own directory instead, which
  infra.backends removes at stop;
- it dies with the local stack that started it (PARENT_PID), even if that one is killed and cannot stop it.
Nothing else of LocalStack is changed.
"""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1

storage, parent = sys.argv[1], int(sys.argv[2])
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
if os.getppid() != parent:  # the parent died before the line above took effect
    sys.exit(1)

from localstack.services.s3 import provider  # type: ignore[import-not-found]  # noqa: E402

provider.DEFAULT_S3_TMP_DIR = storage

from localstack.runtime.main import main  # type: ignore[import-not-found]  # noqa: E402  (after the folder is set)

main()
