#pragma once
// OpenBLAS's own cblas.h (Debian: /usr/include/<triplet>/openblas-pthread/, found through pkg-config "openblas").
#include <cblas.h>
