"""Starts LocalStack's runtime in host mode; run by .venv-localstack's Python 3.13, not by the product's.

`python infra/localstack_launcher.py S3_STORAGE_DIR`: LocalStack's S3 keeps object data in a folder fixed in
its code (/tmp/localstack-s3-storage), shared by every instance on the machine and left behind; this puts it
under the stack's own directory instead, which infra.backends removes at stop. Nothing else is changed.
"""

import sys

from localstack.services.s3 import provider  # type: ignore[import-not-found]

provider.DEFAULT_S3_TMP_DIR = sys.argv[1]

from localstack.runtime.main import main  # type: ignore[import-not-found]  # noqa: E402  (after the folder is set)

main()
