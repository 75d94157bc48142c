-- Conformance group 10 (Autobahn 10): spec/conformance/cases/misc.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.misc",
  { describe = describe, it = it, teardown = teardown })
