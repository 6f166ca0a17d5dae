// Batched UDP for the DNS node: a socket of its own (SO_REUSEPORT when asked), polled from Node's event loop with
// libuv, read with recvmmsg and answered with sendmmsg: one system call and one call into JavaScript per batch of up
// to SLOTS datagrams instead of one of each per datagram (node:dgram). N-API only, so one build serves every Node
// version with N-API 8.
//
// Memory shared with JavaScript (its own buffers, held here by reference):
//   input   SLOTS x SLOT bytes: datagram i at i * SLOT
//   output  SLOTS x SLOT bytes: reply i at i * SLOT
//   meta    Int32Array SLOTS x 4: [in length, out length (0: no reply), family (4 | 6), port]
//   peers   Uint8Array SLOTS x 16: the sender's address (4 or 16 bytes)
// On each batch the callback gets the count; the replies it leaves go back to each query's sender in one sendmmsg.
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace {

constexpr int SLOTS = 64;
constexpr size_t SLOT = 65536;
// Batches read per readable event before the loop gets a turn (the socket stays readable: libuv comes back).
constexpr int ROUNDS = 4;

struct Socket {
  uv_poll_t poll;
  napi_env env;
  int fd;
  bool closed;
  napi_ref refs[5];  // input, output, meta, peers, callback
  napi_async_context context;
  uint8_t* input;
  uint8_t* output;
  int32_t* meta;
  uint8_t* peers;
  sockaddr_storage from[SLOTS];
  iovec inVec[SLOTS];
  mmsghdr in[SLOTS];
  iovec outVec[SLOTS];
  mmsghdr out[SLOTS];
  double received, sent, unsent;
};

#define CHECK(call)                                                          \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error(env, nullptr, "udp-batch: " #call " failed");       \
      return nullptr;                                                        \
    }                                                                        \
  } while (0)

napi_value throwErrno(napi_env env, const char* what, int err) {
  std::string message = std::string(what) + ": " + strerror(err);
  napi_throw_error(env, nullptr, message.c_str());
  return nullptr;
}

void sendReplies(Socket* s, int count) {
  int n = 0;
  for (int i = 0; i < count; i++) {
    int32_t len = s->meta[i * 4 + 1];
    if (len <= 0 || static_cast<size_t>(len) > SLOT) continue;
    s->outVec[n] = {s->output + i * SLOT, static_cast<size_t>(len)};
    msghdr& h = s->out[n].msg_hdr;
    memset(&h, 0, sizeof h);
    h.msg_name = &s->from[i];
    h.msg_namelen = s->in[i].msg_hdr.msg_namelen;
    h.msg_iov = &s->outVec[n];
    h.msg_iovlen = 1;
    n++;
  }
  int done = 0;
  while (done < n) {
    int r = sendmmsg(s->fd, s->out + done, n - done, MSG_DONTWAIT);
    if (r > 0) {
      done += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    // The socket's send buffer is full (EAGAIN): the rest is dropped, as a busy server drops queries. Any other error
    // belongs to the one reply at the head (an unreachable address): skip it.
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    done++;
    s->unsent++;
  }
  s->sent += done;
  s->unsent += n - done;
}

void onReadable(uv_poll_t* handle, int status, int events) {
  Socket* s = static_cast<Socket*>(handle->data);
  if (s->closed || status < 0 || !(events & UV_READABLE)) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv;
  napi_get_reference_value(env, s->refs[4], &callback);
  napi_get_global(env, &recv);  // napi_make_callback wants an object
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < SLOTS; i++) s->in[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    int n = recvmmsg(s->fd, s->in, SLOTS, MSG_DONTWAIT, nullptr);
    if (n <= 0) break;
    s->received += n;
    for (int i = 0; i < n; i++) {
      int32_t* m = s->meta + i * 4;
      m[0] = (s->in[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : static_cast<int32_t>(s->in[i].msg_len);
      m[1] = 0;
      if (s->from[i].ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&s->from[i]);
        // An IPv4 client of a dual-stack socket is an IPv4 address (as node:dgram's text becomes through parseIp).
        bool mapped = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
        m[2] = mapped ? 4 : 6;
        m[3] = ntohs(a->sin6_port);
        memcpy(s->peers + i * 16, mapped ? a->sin6_addr.s6_addr + 12 : a->sin6_addr.s6_addr, mapped ? 4 : 16);
      } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&s->from[i]);
        m[2] = 4;
        m[3] = ntohs(a->sin_port);
        memcpy(s->peers + i * 16, &a->sin_addr, 4);
      }
    }
    napi_value argv[1], result;
    napi_create_int32(env, n, &argv[0]);
    napi_status st = napi_make_callback(env, s->context, recv, callback, 1, argv, &result);
    if (st == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);  // to process 'uncaughtException'
      break;
    }
    if (st != napi_ok) break;
    if (s->closed) break;  // closed by the callback
    sendReplies(s, n);
    if (n < SLOTS) break;
  }
  napi_close_handle_scope(env, scope);
}

bool bufferData(napi_env env, napi_value v, size_t want, void** data) {
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok) return false;
  size_t size = length * (type == napi_int32_array ? 4 : 1);
  return size >= want && (type == napi_uint8_array || type == napi_int32_array);
}

// open(host, port, reusePort, input, output, meta, peers, onBatch) → handle; the port is handle.port
napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 8) {
    napi_throw_type_error(env, nullptr, "open(host, port, reusePort, input, output, meta, peers, onBatch)");
    return nullptr;
  }
  char host[64];
  size_t hostLen;
  int32_t port;
  bool reusePort;
  CHECK(napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hostLen));
  CHECK(napi_get_value_int32(env, argv[1], &port));
  CHECK(napi_get_value_bool(env, argv[2], &reusePort));
  void *input, *output, *meta, *peers;
  if (!bufferData(env, argv[3], SLOTS * SLOT, &input) || !bufferData(env, argv[4], SLOTS * SLOT, &output) ||
      !bufferData(env, argv[5], SLOTS * 16, &meta) || !bufferData(env, argv[6], SLOTS * 16, &peers)) {
    napi_throw_type_error(env, nullptr, "udp-batch: buffers too small");
    return nullptr;
  }
  sockaddr_storage addr{};
  socklen_t addrLen;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    addrLen = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    addrLen = sizeof *a6;
  } else {
    napi_throw_type_error(env, nullptr, "udp-batch: the host must be an IP address");
    return nullptr;
  }
  int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throwErrno(env, "socket", errno);
  int one = 1;
  if (reusePort && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return throwErrno(env, "SO_REUSEPORT", err);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), addrLen) < 0) {
    int err = errno;
    close(fd);
    return throwErrno(env, (std::string("bind ") + host + ":" + std::to_string(port)).c_str(), err);
  }
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addrLen) < 0) {
    int err = errno;
    close(fd);
    return throwErrno(env, "getsockname", err);
  }
  int bound = ntohs(addr.ss_family == AF_INET6 ? a6->sin6_port : a4->sin_port);

  Socket* s = new Socket();
  s->env = env;
  s->fd = fd;
  s->input = static_cast<uint8_t*>(input);
  s->output = static_cast<uint8_t*>(output);
  s->meta = static_cast<int32_t*>(meta);
  s->peers = static_cast<uint8_t*>(peers);
  for (int i = 0; i < SLOTS; i++) {
    s->inVec[i] = {s->input + i * SLOT, SLOT};
    msghdr& h = s->in[i].msg_hdr;
    h.msg_name = &s->from[i];
    h.msg_iov = &s->inVec[i];
    h.msg_iovlen = 1;
  }
  for (int i = 0; i < 5; i++) napi_create_reference(env, argv[3 + i], 1, &s->refs[i]);
  napi_value resourceName;
  napi_create_string_utf8(env, "parrot:udp-batch", NAPI_AUTO_LENGTH, &resourceName);
  napi_async_init(env, nullptr, resourceName, &s->context);
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, onReadable);

  napi_value handle, portValue;
  CHECK(napi_create_external(env, s, nullptr, nullptr, &handle));
  napi_value result;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_int32(env, bound, &portValue));
  napi_set_named_property(env, result, "handle", handle);
  napi_set_named_property(env, result, "port", portValue);
  return result;
}

Socket* unwrap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, nullptr, "udp-batch: not a socket handle");
    return nullptr;
  }
  return static_cast<Socket*>(data);
}

// close(handle): stops polling and closes the socket (the handle is dead afterwards).
napi_value Close(napi_env env, napi_callback_info info) {
  Socket* s = unwrap(env, info);
  if (!s || s->closed) return nullptr;
  uv_poll_stop(&s->poll);
  s->closed = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), [](uv_handle_t* h) {
    Socket* s = static_cast<Socket*>(h->data);
    close(s->fd);
    for (napi_ref r : s->refs) napi_delete_reference(s->env, r);
    napi_async_destroy(s->env, s->context);
    // The external handle may still be reachable from JavaScript: keep the struct (a few kB), marked closed.
  });
  return nullptr;
}

// stats(handle) → [received, sent, unsent]
napi_value Stats(napi_env env, napi_callback_info info) {
  Socket* s = unwrap(env, info);
  if (!s) return nullptr;
  napi_value out, v;
  CHECK(napi_create_array_with_length(env, 3, &out));
  double values[3] = {s->received, s->sent, s->unsent};
  for (uint32_t i = 0; i < 3; i++) {
    CHECK(napi_create_double(env, values[i], &v));
    CHECK(napi_set_element(env, out, i, v));
  }
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value slots, slot;
  napi_create_int32(env, SLOTS, &slots);
  napi_create_int32(env, static_cast<int32_t>(SLOT), &slot);
  napi_define_properties(env, exports, 3, props);
  napi_set_named_property(env, exports, "SLOTS", slots);
  napi_set_named_property(env, exports, "SLOT", slot);
  return exports;
}

}  // namespace

NAPI_MODULE(udp_batch, Init)
