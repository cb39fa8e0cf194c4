/*
 * Emits, as JSON on stdout, the server libmemcached picks for a fixed key set
 * under MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, for a few server lists. No server
 * needs to run: memcached_generate_hash only consults the continuum.
 * Build and run through gen-table.sh.
 */
#include <libmemcached/memcached.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *host; /* a path starting with '/' means a unix socket */
  in_port_t port;
  uint32_t weight;
} server_t;

typedef struct {
  const char *name;
  size_t count;
  server_t servers[32];
} case_t;

static const case_t cases[] = {
  {"1 server", 1, {{"10.0.0.1", 11211, 1}}},
  {"3 servers", 3, {{"10.0.0.1", 11211, 1}, {"10.0.0.2", 11212, 1}, {"10.0.0.3", 11211, 1}}},
  {"10 servers", 10,
   {{"10.0.0.1", 11211, 1}, {"10.0.0.2", 11212, 1}, {"10.0.0.3", 11211, 1},
    {"10.0.0.4", 11213, 1}, {"10.0.0.5", 11211, 1}, {"10.0.0.6", 11214, 1},
    {"10.0.0.7", 11211, 1}, {"10.0.0.8", 11215, 1}, {"10.0.0.9", 11211, 1},
    {"10.0.0.10", 11216, 1}}},
  {"weighted 1,2,5", 3, {{"10.0.0.1", 11211, 1}, {"10.0.0.2", 11212, 2}, {"10.0.0.3", 11211, 5}}},
  {"weighted 10 servers", 10,
   {{"cache-a", 11211, 3}, {"cache-b", 11211, 1}, {"cache-c", 11212, 4},
    {"cache-d", 11211, 1}, {"cache-e", 11213, 5}, {"cache-f", 11211, 9},
    {"cache-g", 11211, 2}, {"cache-h", 11214, 6}, {"cache-i", 11211, 5},
    {"cache-j", 11215, 3}}},
  /* With 25 equal servers libmemcached's float arithmetic yields 156 points, not 160. */
  {"25 servers", 25,
   {{"10.1.0.1", 11211, 1}, {"10.1.0.2", 11211, 1}, {"10.1.0.3", 11211, 1},
    {"10.1.0.4", 11211, 1}, {"10.1.0.5", 11211, 1}, {"10.1.0.6", 11211, 1},
    {"10.1.0.7", 11211, 1}, {"10.1.0.8", 11211, 1}, {"10.1.0.9", 11211, 1},
    {"10.1.0.10", 11211, 1}, {"10.1.0.11", 11211, 1}, {"10.1.0.12", 11211, 1},
    {"10.1.0.13", 11211, 1}, {"10.1.0.14", 11211, 1}, {"10.1.0.15", 11211, 1},
    {"10.1.0.16", 11211, 1}, {"10.1.0.17", 11211, 1}, {"10.1.0.18", 11211, 1},
    {"10.1.0.19", 11211, 1}, {"10.1.0.20", 11211, 1}, {"10.1.0.21", 11211, 1},
    {"10.1.0.22", 11211, 1}, {"10.1.0.23", 11211, 1}, {"10.1.0.24", 11211, 1},
    {"10.1.0.25", 11211, 1}}},
  /* These two share the point 3390125743: ties go to the server listed first. */
  {"tied point", 2, {{"10.9.0.7", 11211, 1}, {"10.9.1.106", 11211, 1}}},
  {"tied point, reversed", 2, {{"10.9.1.106", 11211, 1}, {"10.9.0.7", 11211, 1}}},
  {"unix socket and hostnames", 3,
   {{"/var/run/memcached/memcached.sock", 0, 1}, {"cache-a.internal", 11211, 1},
    {"cache-b.internal", 11213, 1}}},
};

#define N_PLAIN 10000
#define N_ASCII 1000
#define N_UTF8 500
#define N_KEYS (N_PLAIN + N_ASCII + N_UTF8)

static char *keys[N_KEYS];

static uint32_t rng_state = 0x9e3779b9u;
static uint32_t rng(void) { /* xorshift32: deterministic, platform independent */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

static void make_keys(void) {
  static const char *parts[] = {"ключ", "キー", "鍵", "🔑", "é", "ß", "user", ":", "значение", "😀"};
  char buf[512];
  size_t k = 0;
  for (int i = 0; i < N_PLAIN; i++) {
    snprintf(buf, sizeof buf, "key:%d", i);
    keys[k++] = strdup(buf);
  }
  for (int i = 0; i < N_ASCII; i++) { /* printable, no space: valid memcached keys */
    size_t len = 1 + rng() % 64;
    for (size_t j = 0; j < len; j++) buf[j] = (char) (0x21 + rng() % 94);
    buf[len] = 0;
    keys[k++] = strdup(buf);
  }
  for (int i = 0; i < N_UTF8; i++) {
    size_t len = 0, n = 1 + rng() % 5;
    for (size_t j = 0; j < n; j++) {
      len += (size_t) snprintf(buf + len, sizeof buf - len, "%s", parts[rng() % 10]);
    }
    snprintf(buf + len, sizeof buf - len, "%u", (unsigned) i);
    keys[k++] = strdup(buf);
  }
}

static void print_json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    putchar(*s);
  }
  putchar('"');
}

static void fail(memcached_st *memc, const char *what, memcached_return_t rc) {
  fprintf(stderr, "%s: %s\n", what, memcached_strerror(memc, rc));
  exit(1);
}

int main(void) {
  make_keys();
  printf("{\"generator\":\"libmemcached %s, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED\",\n\"keys\":[",
         memcached_lib_version());
  for (size_t k = 0; k < N_KEYS; k++) {
    if (k) putchar(',');
    print_json_string(keys[k]);
  }
  printf("],\n\"cases\":[");

  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const case_t *tc = &cases[c];
    memcached_st *memc = memcached_create(NULL);
    memcached_return_t rc = memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
    if (rc != MEMCACHED_SUCCESS) fail(memc, "behavior_set", rc);

    printf("%s\n{\"name\":", c ? "," : "");
    print_json_string(tc->name);
    printf(",\"servers\":[");
    for (size_t s = 0; s < tc->count; s++) {
      const server_t *sv = &tc->servers[s];
      rc = sv->host[0] == '/'
          ? memcached_server_add_unix_socket_with_weight(memc, sv->host, sv->weight)
          : memcached_server_add_with_weight(memc, sv->host, sv->port, sv->weight);
      if (rc != MEMCACHED_SUCCESS) fail(memc, "server_add", rc);
      /* spec string in the syntax parseServerSpec accepts */
      if (sv->host[0] == '/') printf("%s\"%s\"", s ? "," : "", sv->host);
      else if (sv->weight != 1) printf("%s\"%s:%u:%u\"", s ? "," : "", sv->host, sv->port, sv->weight);
      else printf("%s\"%s:%u\"", s ? "," : "", sv->host, sv->port);
    }
    printf("],\"primary\":[");
    for (size_t k = 0; k < N_KEYS; k++) {
      printf("%s%u", k ? "," : "", memcached_generate_hash(memc, keys[k], strlen(keys[k])));
    }
    printf("]}");
    memcached_free(memc);
  }
  printf("\n]}\n");
  return 0;
}
