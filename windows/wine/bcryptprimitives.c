/* A stand-in for Windows' bcryptprimitives.dll, for running the Windows test binaries under Wine 8 only (never
 * shipped). Rust's standard library imports ProcessPrng from it (Windows 10+); Wine 8 does not have the DLL.
 * ProcessPrng fills the buffer from the system RNG; here that is RtlGenRandom (advapi32's SystemFunction036),
 * which Wine implements from the host's /dev/urandom. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
