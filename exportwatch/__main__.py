from exportwatch.cli import main

raise SystemExit(main())
