// The instruction set ATen's CPU kernels dispatch to ("AVX512", "AVX2", "DEFAULT", ...), as
// at::get_cpu_capability() reports it. tch exposes no binding, and the function returns a
// std::string, so this two-line shim gives it a C signature. No libtorch header is needed: the
// declaration matches the symbol libtorch_cpu exports (_ZN2at18get_cpu_capabilityB5cxx11Ev).
#include <cstring>
#include <string>

namespace at {
std::string get_cpu_capability();
}

// Copies the capability's name (NUL-terminated, truncated to fit) into buf; returns its length.
extern "C" size_t oodpipe_cpu_capability(char* buf, size_t len) {
    std::string s = at::get_cpu_capability();
    if (len > 0) {
        size_t n = s.size() < len - 1 ? s.size() : len - 1;
        std::memcpy(buf, s.data(), n);
        buf[n] = '\0';
    }
    return s.size();
}
