-- Conformance group 6 (Autobahn 6): spec/conformance/cases/utf8.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.utf8",
  { describe = describe, it = it, teardown = teardown })
