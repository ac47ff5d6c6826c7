from hearth.docs.generate import main

raise SystemExit(main())
