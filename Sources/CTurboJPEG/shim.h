#pragma once
// libjpeg-turbo TurboJPEG API (Debian: libturbojpeg0-dev), found through pkg-config "libturbojpeg".
#include <turbojpeg.h>
