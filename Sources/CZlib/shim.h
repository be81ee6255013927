#pragma once
// zlib (Debian: zlib1g-dev), found through pkg-config "zlib".
#include <zlib.h>
