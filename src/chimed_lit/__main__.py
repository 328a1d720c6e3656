from chimed_lit.cli.main import main

raise SystemExit(main())
