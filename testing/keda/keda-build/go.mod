// Build-only module: pins the KEDA release that testing/keda/build.sh compiles from the Go
// module proxy (keda-operator and keda-adapter only) for the test bed.
module hearth.local/testing/keda/keda-build

go 1.26.0

tool (
	github.com/kedacore/keda/v2/cmd/adapter
	github.com/kedacore/keda/v2/cmd/operator
)

require github.com/kedacore/keda/v2 v2.21.0

// KEDA's own replace/exclude directives do not apply to a module that depends on it: copied here.
replace github.com/nexus-rpc/nexus-proto-annotations v0.1.0 => github.com/nexus-rpc/nexus-proto-annotations v0.1.1-0.20260629224316-835bd8d49cb4

exclude github.com/go-chi/chi/v5 v5.2.3
