from hearth.docs import generate

raise SystemExit(generate.main())
