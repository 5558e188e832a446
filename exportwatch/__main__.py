from exportwatch.cli.main import main

raise SystemExit(main())
