from provisioning.cli.main import main

raise SystemExit(main())
