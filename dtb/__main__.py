from dtb.cli import main

raise SystemExit(main())
