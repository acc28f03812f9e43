/* kws_qemu_plugin.h - kwsgen's own declarations of the few QEMU TCG plugin API functions and
 * types that insn_count.c uses.
 *
 * Why: Debian's qemu-system-arm supports plugins but ships no qemu-plugin.h. These are written
 * from the documented plugin API version 1 as implemented by QEMU 7.2 (the ABI QEMU exports to
 * plugins: plain C functions, an opaque plugin id, opaque tb/insn handles, and the exported
 * integer `qemu_plugin_version`). Only what kwsgen needs is declared; every type here must keep
 * the layout and every enum the values of that ABI.
 */
#ifndef KWS_QEMU_PLUGIN_H
#define KWS_QEMU_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define KWS_PLUGIN_EXPORT __attribute__((visibility("default")))

/* The API version this plugin is written against (QEMU 7.2 accepts 0..1). */
#define KWS_QEMU_PLUGIN_API_VERSION 1

typedef uint64_t qemu_plugin_id_t;

/* Passed to qemu_plugin_install; its fields are not read here, so it stays incomplete. */
typedef struct qemu_info_t qemu_info_t;

struct qemu_plugin_tb;   /* opaque: a translation block being translated */
struct qemu_plugin_insn; /* opaque: one instruction of that block */

enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS = 0,
    QEMU_PLUGIN_CB_R_REGS = 1,
    QEMU_PLUGIN_CB_RW_REGS = 2
};

enum qemu_plugin_op {
    QEMU_PLUGIN_INLINE_ADD_U64 = 0
};

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

/* Exported by the plugin. */
extern KWS_PLUGIN_EXPORT int qemu_plugin_version;
KWS_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

/* Provided by QEMU. */
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

#endif /* KWS_QEMU_PLUGIN_H */
