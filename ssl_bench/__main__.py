import sys

from ssl_bench.cli import main

sys.exit(main())
