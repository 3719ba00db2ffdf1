// Small socket helpers shared by the demo server and client: each loops over
// partial writes and EINTR.
#pragma once

#include <string_view>

namespace odigos::demo::io {

bool write_all(int fd, std::string_view s);
bool send_all(int fd, std::string_view s); // MSG_NOSIGNAL
bool iequals(std::string_view a, std::string_view b);

} // namespace odigos::demo::io
