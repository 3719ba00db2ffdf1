// C++ view of the kernel/userspace ABI: layout checks so a change on one side
// cannot silently reinterpret the other's bytes.
#pragma once

#include <cstddef>

extern "C" {
#include "odigos/abi.h"
}

static_assert(sizeof(ot_event_hdr) == 24);
static_assert(sizeof(ot_addr) == 24);
static_assert(sizeof(ot_data_event) == 80, "payload starts right after the fixed part");
static_assert(offsetof(ot_data_event, cookie) == 24);
static_assert(offsetof(ot_data_event, pos) == 32);
static_assert(sizeof(ot_conn_event) == 112);
static_assert(sizeof(ot_proc_event) == 48);
static_assert(sizeof(ot_go_spawn_event) == 40);
static_assert(sizeof(ot_conn_state) == 48);
