# Copies ikelink.exe and wintun.dll into one folder, after checking that wintun.dll carries a valid
# Authenticode signature from WireGuard LLC. Run as Administrator when the destination is under Program Files.
#
#   powershell -ExecutionPolicy Bypass -File install.ps1 -Source . -Destination "C:\Program Files\Ikelink"
param(
    [string]$Source = ".",
    [string]$Destination = (Join-Path $env:ProgramFiles "Ikelink")
)
$ErrorActionPreference = "Stop"

$exe = Join-Path $Source "ikelink.exe"
$dll = Join-Path $Source "wintun.dll"
foreach ($f in @($exe, $dll)) {
    if (-not (Test-Path -LiteralPath $f -PathType Leaf)) { throw "missing $f" }
}

$sig = Get-AuthenticodeSignature -LiteralPath $dll
if ($sig.Status -ne "Valid") {
    throw "wintun.dll: signature is $($sig.Status) ($($sig.StatusMessage)); get it from https://www.wintun.net"
}
if ($sig.SignerCertificate.Subject -notmatch "O=WireGuard LLC") {
    throw "wintun.dll is signed by '$($sig.SignerCertificate.Subject)', not WireGuard LLC"
}
Write-Host "wintun.dll: valid signature, $($sig.SignerCertificate.Subject)"

New-Item -ItemType Directory -Force -Path $Destination | Out-Null
Copy-Item -LiteralPath $exe, $dll -Destination $Destination -Force
Write-Host "installed to $Destination; run '$Destination\ikelink.exe connect --profile <file>' as Administrator"
