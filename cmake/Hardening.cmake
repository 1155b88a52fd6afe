# Hardening flags for every build: fortified libc calls (needs optimisation,
# so only outside Debug/Asan), stack protector, PIE and full RELRO.
add_compile_options(-fstack-protector-strong -fPIE)
if(NOT CMAKE_BUILD_TYPE MATCHES "^(Debug|Asan)$")
  add_compile_options(-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
endif()
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
add_link_options(-pie -Wl,-z,relro,-z,now)
