/*
 * natkit_udp: batched UDP datagram I/O for natkit (Linux), in plain N-API C.
 *
 * One socket = one non-blocking fd polled by a uv_poll_t on Node's main loop. When the fd is readable, recvmmsg()
 * fills up to BATCH datagrams into a receive ArrayBuffer shared with JS (one SLOT per datagram) and an Int32Array of
 * per-datagram metadata; then ONE JS call dispatches the whole batch. JS appends outgoing datagrams to a send buffer +
 * metadata and calls flush(), which sends them with sendmmsg(). The JS side is src/net/batch-udp.ts.
 *
 * The buffers and the mmsghdr arrays are shared by every socket of an N-API environment (one per process or worker),
 * not owned by each socket: batches are dispatched synchronously on the environment's one thread, so a socket's batch
 * has been handed to JS in full before the next recvmmsg (on any socket) overwrites the receive buffer, and the send
 * buffer is flushed by JS before control returns to the event loop. A socket itself is then a few hundred bytes. The
 * shared buffers are allocated on first use (first readable event, or first buffers() call from JS).
 *
 * Layouts (int32 words, native endian; address bytes are in network order, as in the sockaddr):
 *   receive meta, per datagram i, at i*META:      [length (-1: truncated, skip), port, family 4|6, 0, addr[16 bytes]]
 *   send meta,    per datagram i, at i*SEND_META: [offset in send buffer, length, port, family 4|6, addr[16 bytes],
 *                                                  socket id (the `id` open() returned), 0]
 * flush() sends each socket's datagrams in the order they were queued (datagrams of different sockets may be
 * reordered between sockets).
 *
 * The relay's fast path (udp_fast.c): a forwarding table of established channels, consulted on every receive batch
 * before JS is called. Datagrams it forwards get length FAST_DONE (< 0) in the receive metadata and JS skips them; when
 * it forwarded the whole batch, JS is not called at all. What it forwards is copied to a send queue (udp_pending.c)
 * flushed once per event-loop iteration (and before JS's own sends): one sendmmsg per sending socket, runs of
 * equal-size datagrams to one destination as one UDP GSO message.
 */
/* The parts, one file each: udp_arena.c (shared buffers, socket ids), udp_socket.c (open, close, stats, lifecycle),
 * udp_recv.c (recvmmsg and the batch callback), udp_send.c (sendmmsg of queued datagrams), udp_fast.c (the relay's
 * forwarding table for established channels), udp_pending.c (the fast path's send queue, UDP GSO), udp_module.c
 * (exports). */

#ifndef NATKIT_UDP_BATCH_H
#define NATKIT_UDP_BATCH_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define BATCH 64                 /* datagrams per recvmmsg/sendmmsg */
#define SLOT 65536               /* bytes per receive slot: any UDP payload (max 65527 on IPv6) fits */
#define META 8                   /* int32 words of metadata per datagram */
#define SEND_BYTES (256 * 1024)  /* shared send buffer; must hold at least one 65535-byte datagram */
#define MAX_BATCHES_PER_EVENT 16 /* recvmmsg rounds per readable event, so other handles get their turn */
#define SEND_META 10             /* int32 words of send metadata per datagram (META + socket id + padding) */

_Static_assert(BATCH <= 64, "flush() tracks a batch in a 64-bit mask");

#define PEND_MAX 1024           /* datagrams held by the fast path until the end of the loop iteration (UIO_MAXIOV) */
#define PEND_BYTES (1024 * 1024) /* their bytes (ChannelData headers included) */
#define GSO_MAX_SEGS 64          /* datagrams per UDP GSO message (the kernel's UDP_MAX_SEGMENTS is 64, 128 since 6.x) */
#define GSO_MAX_BYTES 60000      /* payload bytes per UDP GSO message (the IP length field's 64 KiB, less headers) */
#define FAST_DONE (-2)        /* receive meta length of a datagram the fast path forwarded (JS skips it) */

typedef struct sock sock_t;

/* Fast path key: receiving socket id, remote address (IPv4 as ::ffff:a.b.c.d), remote port, channel (0: peer data). */
typedef struct {
  int32_t sock;
  uint8_t addr[16];
  uint16_t port;
  uint16_t channel;
} fast_key_t;
_Static_assert(sizeof(fast_key_t) == 24, "fast_key_t is hashed as bytes: no padding");

/* Fast path entry: where datagrams matching `key` go (see udp_fast.c). */
typedef struct fast_entry {
  fast_key_t key;
  struct fast_entry *next;
  int64_t expires;    /* monotonic ms */
  int32_t out_sock;   /* sending socket id */
  uint32_t out_gen, in_gen; /* generations of the sending and the receiving socket when installed */
  int32_t reverse;    /* 0: ChannelData client -> peer; 1: peer datagram -> client as ChannelData `channel` */
  uint8_t addr[16];   /* destination */
  uint16_t port;
  uint16_t channel;
} fast_entry_t;

/* Per N-API environment: the buffers shared with JS, the mmsghdr arrays, and the socket id table for flush(). */
typedef struct {
  napi_env env;
  int ready; /* the buffers below exist */
  napi_ref recv_ab, recv_meta_ab, send_ab, send_meta_ab;
  uint8_t *recv;
  int32_t *recv_meta;
  uint8_t *send;
  int32_t *send_meta;
  struct mmsghdr rmsg[BATCH];
  struct iovec riov[BATCH];
  struct sockaddr_storage raddr[BATCH];
  struct mmsghdr smsg[BATCH];
  struct iovec siov[BATCH];
  struct sockaddr_storage saddr[BATCH];
  sock_t **socks;  /* socks[id] = the open socket with that id, or NULL; id 0 is never used */
  int32_t *free_ids;
  int32_t n_free, cap;
  uint32_t next_gen; /* generation given to the next socket opened */
  /* The fast path's table (chained hash, power-of-two buckets; udp_fast.c). */
  fast_entry_t **fast_buckets;
  uint32_t fast_nbuckets, fast_count;
  /* Datagrams the fast path forwards, both directions, held until the end of this event-loop iteration (or until
   * JS sends, or a socket closes) and then sent with one sendmmsg per sending socket, runs of equal-size datagrams to
   * one destination as one UDP GSO message (udp_pending.c). Allocated on first use. */
  struct pending *pending;
  uv_check_t *pcheck;    /* flushes the pending datagrams after each poll phase; its own allocation (closed async) */
  int gso;               /* UDP GSO allowed in this environment (NATKIT_UDP_GSO=0 or setGso(false) turns it off) */
} shared_t;

struct sock {
  uv_poll_t poll;
  napi_env env;
  shared_t *shared;
  int32_t id;  /* index in shared->socks while open; 0 once closed */
  uint32_t gen; /* distinguishes this socket from others that had the same id */
  int fd;
  int family; /* AF_INET or AF_INET6 */
  int closing;       /* close() called (or env teardown): no more I/O, no more JS calls */
  int handle_closed; /* uv_close callback ran */
  int finalized;     /* the JS external was collected */
  int env_gone;      /* the N-API environment is being torn down: no more N-API calls */
  napi_ref callback, resource;
  napi_async_context async;
  double rx_packets, rx_batches, rx_truncated, rx_errors, tx_packets, tx_batches, tx_drops, tx_errors;
  int last_tx_errno;
  double fast_c2p_packets, fast_c2p_bytes, fast_p2c_packets, fast_p2c_bytes; /* fast path, on relay sockets */
  double tx_gso_messages, tx_gso_datagrams; /* UDP GSO messages sent, and the datagrams they carried */
  int gso_off;                /* the kernel refused UDP GSO on this socket (EIO: no checksum offload), or cannot do it */
  uint32_t gso_fail_size;     /* GSO with segments this size or larger failed (EINVAL, EMSGSIZE: the MTU); 0: none */
  /* While datagrams are pending for this socket (udp_pending.c): its chain of destinations, and its mark. */
  int32_t pf_head, pf_tail;
  int pdirty;
};

#define CHECK(call)                                                                                                  \
  do {                                                                                                               \
    if ((call) != napi_ok) {                                                                                         \
      throw_last(env, #call);                                                                                        \
      return NULL;                                                                                                   \
    }                                                                                                                \
  } while (0)

/* Shared across the parts (hidden: -fvisibility=hidden). */
void throw_last (napi_env env, const char *what);
void throw_errno (napi_env env, int err, const char *syscall, const char *detail);
void maybe_free (sock_t *s);
void on_handle_closed (uv_handle_t *h);
void on_finalize (napi_env env, void *data, void *hint);
void stop_io (sock_t *s);
void on_env_cleanup (void *arg);
void release_refs (sock_t *s);
void report_error (sock_t *s, napi_value cb, napi_value self, int err);
int get_int (napi_env env, napi_value v, int32_t *out);
napi_value js_open (napi_env env, napi_callback_info info);
sock_t *get_sock (napi_env env, napi_value v);
napi_value js_close (napi_env env, napi_callback_info info);
napi_value js_stats (napi_env env, napi_callback_info info);
napi_value make_ab (napi_env env, size_t bytes, void **data, napi_ref *ref);
void unmap_buffer (napi_env env, void *data, void *hint);
napi_value make_lazy_ab (napi_env env, size_t bytes, void **data, napi_ref *ref);
int ensure_shared (napi_env env, shared_t *sh);
int reserve_id (shared_t *sh);
napi_value js_buffers (napi_env env, napi_callback_info info);
void free_shared (napi_env env, void *data, void *hint);
void on_readable (uv_poll_t *h, int status, int events);
int fill_dest (shared_t *sh, sock_t *s, int k, const int32_t *m);
int send_counted (sock_t *s, struct mmsghdr *msgs, int n);
int send_slots (shared_t *sh, sock_t *s, int n);
napi_value js_flush (napi_env env, napi_callback_info info);
int fast_forward (shared_t *sh, sock_t *s, int n);
socklen_t fast_dest_addr (const sock_t *out, const uint8_t addr[16], uint16_t port, struct sockaddr_storage *ss);
void fast_purge_socket (shared_t *sh, int32_t id);
void fast_free_all (shared_t *sh);
void fast_flush_pending (shared_t *sh);
int pending_ready (shared_t *sh, sock_t *any);
int pending_add (shared_t *sh, sock_t *out, const uint8_t addr[16], uint16_t port, const uint8_t *hdr, size_t hlen,
                 const uint8_t *data, size_t len);
void pending_free (shared_t *sh);
napi_value js_set_gso (napi_env env, napi_callback_info info);
napi_value js_fast_install (napi_env env, napi_callback_info info);
napi_value js_fast_purge (napi_env env, napi_callback_info info);
napi_value js_fast_count (napi_env env, napi_callback_info info);
napi_value js_take_fast (napi_env env, napi_callback_info info);
napi_value constant (napi_env env, napi_value exports, const char *name, int value);

#endif
