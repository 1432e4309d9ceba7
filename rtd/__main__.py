from rtd.cli import main
import sys

sys.exit(main())
