{
  "targets": [
    {
      "target_name": "dpdk_native",
      "sources": ["addon/engine.c", "addon/policy.c", "addon/binding.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags libdpdk)"],
      "cflags_c": ["-std=gnu11"],
      "ldflags": ["<!@(pkg-config --libs libdpdk)"],
      "libraries": ["<!@(pkg-config --libs libdpdk)"]
    }
  ]
}
