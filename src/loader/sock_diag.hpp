// Listening TCP sockets of a network namespace through NETLINK_SOCK_DIAG: the
// kernel is asked for TCP_LISTEN sockets only (inet_diag_req_v2, idiag_states),
// so the answer does not grow with established or TIME_WAIT sockets the way
// /proc/net/tcp{,6} does (those list every socket of the namespace).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace odigos::sock_diag {

// Socket inode → local port, IPv4 and IPv6 listeners (an IPv6 dual-stack
// listener appears once, as IPv6).
using Listeners = std::unordered_map<uint64_t, uint16_t>;

// netns_fd: -1 for this thread's network namespace, or an open /proc/PID/ns/net
// (entering another namespace needs CAP_SYS_ADMIN; the calling thread's own
// namespace never changes). nullopt when netlink is unavailable or refuses, with
// the reason in *error when given: callers fall back to /proc.
std::optional<Listeners> tcp_listeners(int netns_fd = -1, std::string* error = nullptr);

} // namespace odigos::sock_diag
