// Go's text rules moved to util/text.hpp (shared with the CLI and error
// messages). This header keeps dockerfile::text:: working for builder/build.cpp
// until it includes util/text.hpp itself.
#pragma once

#include "util/text.hpp"

namespace strata::dockerfile {
namespace text = strata::text;
} // namespace strata::dockerfile
