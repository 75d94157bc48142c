-- Conformance group 5 (Autobahn 5): spec/conformance/cases/fragmentation.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.fragmentation",
  { describe = describe, it = it, teardown = teardown })
