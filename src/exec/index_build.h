/*
 * index_build.h — the field index builder (index_build.c) seen from the
 * session executor: at its start it resumes the builds and drops that a
 * crash or restart interrupted in its database.
 */
#ifndef TG_EXEC_INDEX_BUILD_H
#define TG_EXEC_INDEX_BUILD_H

extern void tg_index_resume(void);

#endif
