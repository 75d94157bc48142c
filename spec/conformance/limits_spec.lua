-- Conformance group 9 (Autobahn 9): spec/conformance/cases/limits.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.limits",
  { describe = describe, it = it, teardown = teardown })
