#pragma once
// libzmq (Debian: libzmq3-dev). No pkg-config: libzmq.pc drags in -isystem flags SwiftPM rejects.
#include <zmq.h>
