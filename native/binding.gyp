{
  "targets": [
    {
      "target_name": "natkit_udp",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["udp_arena.c", "udp_socket.c", "udp_recv.c", "udp_send.c", "udp_fast.c", "udp_pending.c", "udp_module.c"],
          "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
          "defines": ["NAPI_VERSION=8"]
        }]
      ]
    }
  ]
}
