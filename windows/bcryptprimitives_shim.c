/* ProcessPrng for wine 8.0, which lacks bcryptprimitives.dll (Windows 10 and later have it).
 * Rust's standard library takes its randomness from ProcessPrng; this stand-in answers from
 * RtlGenRandom (advapi32's SystemFunction036), which wine has. For tests under wine only:
 * never shipped to users (their Windows has the real one). */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
