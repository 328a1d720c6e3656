from chimed_lit.cli import main

raise SystemExit(main())
