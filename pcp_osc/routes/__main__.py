from .docs import main

raise SystemExit(main())
