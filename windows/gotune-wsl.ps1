#Requires -Version 5.1
<#
.SYNOPSIS
    Sets up a WSL2 distro for Go development with gotune, from Windows.

.DESCRIPTION
    Each step checks first, acts only when the check fails, then checks again
    (as microsoft/WindowsDeveloperConfig does), so running the script twice changes
    nothing the second time:

      1. WSL present (wsl --status), else wsl --install --no-distribution; Windows
         must restart then, so the script stops and asks you to run it again.
      2. The distro present (wsl --list --quiet), else wsl --install -d <Distro> --no-launch.
      3. gotune installed in the distro, as root, from -Source: apt-get install
         python3-venv git, a venv in /opt/gotune-venv, /usr/local/bin/gotune.
      4. gotune apply --yes for the distro's default user; its output ends with
         verify's summary.
      5. If gotune changed wsl.conf or .wslconfig, WSL must restart: the script asks
         before wsl --shutdown (which stops every running distro), or does it with -Yes.

    The script stays thin: every decision about the machine is made by gotune inside
    the distro, where it is tested. Every native command it runs is listed in the
    table $Commands below (tests/test_wsl_ps1.py checks that table against the
    documented wsl.exe flags).

    Exit status: 0 done; 1 failed; 3 the distro needs its first start (create your
    Linux user), then run the script again; 4 applied but verify failed; 3010 Windows
    must restart (WSL was just installed), then run the script again.

    Keep this file ASCII: Windows PowerShell 5.1 reads a script without a BOM in the
    ANSI code page.

.PARAMETER Distro
    The WSL distro to set up (default Debian). gotune needs Python 3.10 or newer
    and apt, hence this list: Ubuntu-20.04 has Python 3.8.

.PARAMETER Source
    Where to install gotune from: a wheel or a checkout on Windows (a path that
    exists; it is translated inside the distro with wslpath -a), or a pip
    requirement (default gotune, the released package).

.PARAMETER Yes
    Do not ask before restarting WSL (wsl --shutdown stops every running distro).

.PARAMETER DefenderExclusions
    Also add the Microsoft Defender exclusions that help Go builds (needs an
    elevated PowerShell). See Add-DefenderExclusions for what and why.

.PARAMETER DryRun
    Run the checks, print the commands that would change something, run none.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File windows\gotune-wsl.ps1 -Distro Debian

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File windows\gotune-wsl.ps1 -Source dist\gotune-0.1.0-py3-none-any.whl -Yes
#>
[CmdletBinding()]
param(
    [ValidateSet('Debian', 'Ubuntu', 'Ubuntu-22.04', 'Ubuntu-24.04')]
    [string]$Distro = 'Debian',

    # No double quotes: Windows PowerShell 5.1 passes them to native programs broken.
    [ValidatePattern('^[^"]+$')]
    [string]$Source = 'gotune',

    [switch]$Yes,

    [switch]$DefenderExclusions,

    [switch]$DryRun
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$SourceGiven = $PSBoundParameters.ContainsKey('Source')

# Every native command this script runs, by step (the function of that name) and name.
# A word that is exactly '{Distro}', '{Source}' or '{User}' is replaced by that value;
# nothing else is ever substituted, so no value can become a flag or a second command.
#
# wsl.exe flags: https://learn.microsoft.com/en-us/windows/wsl/basic-commands and
# `wsl --help`. Inside the distro every command goes through --exec, never `--`:
# with `--` wsl.exe hands the rest of the line to `$SHELL -c`, which would eat the
# backslashes of a Windows path and expand $ and ~ (microsoft/WSL#11635).
$Commands = [ordered]@{
    'Test-Wsl'              = [ordered]@{
        Status = @('wsl.exe', '--status')
    }
    'Install-Wsl'           = [ordered]@{
        Install = @('wsl.exe', '--install', '--no-distribution')
    }
    'Test-Distro'           = [ordered]@{
        List = @('wsl.exe', '--list', '--quiet')
    }
    'Install-Distro'        = [ordered]@{
        Install = @('wsl.exe', '--install', '--distribution', '{Distro}', '--no-launch')
    }
    'Get-DefaultUser'       = [ordered]@{
        # No --user: the distro's default user, the developer gotune sets up.
        Name = @('wsl.exe', '--distribution', '{Distro}', '--exec', 'id', '-un')
    }
    'Resolve-Source'        = [ordered]@{
        TranslatePath = @('wsl.exe', '--distribution', '{Distro}', '--exec', 'wslpath', '-a', '{Source}')
    }
    'Test-Gotune'           = [ordered]@{
        InstalledSource = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'cat', '/opt/gotune-venv/gotune-source')
        Version         = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'gotune', '--version')
    }
    'Install-Gotune'        = [ordered]@{
        # The layout of the Linux install in the README: its own venv, since the
        # system Python is externally managed.
        AptUpdate    = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'apt-get', 'update')
        AptInstall   = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'apt-get', 'install', '-y', 'python3-venv', 'git')
        MakeVenv     = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'python3', '-m', 'venv', '/opt/gotune-venv')
        PipInstall   = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', '/opt/gotune-venv/bin/pip', 'install', '{Source}')
        Link         = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'ln', '-sf', '/opt/gotune-venv/bin/gotune', '/usr/local/bin/gotune')
        # What Test-Gotune compares -Source with on the next run.
        RecordSource = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', '/opt/gotune-venv/bin/python', '-c', 'import sys; open(sys.argv[1], ''w'').write(sys.argv[2])', '/opt/gotune-venv/gotune-source', '{Source}')
    }
    'Invoke-GotuneApply'    = [ordered]@{
        # PYTHONUNBUFFERED: gotune's output reaches this console through a pipe, and
        # Python would otherwise hold it back until the apply (minutes) is over.
        Apply = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'env', 'PYTHONUNBUFFERED=1', 'gotune', 'apply', '--yes', '--user', '{User}')
    }
    'Test-RestartNeeded'    = [ordered]@{
        # gotune writes this tmpfs file when it changed wsl.conf or .wslconfig; it is
        # gone once WSL has restarted.
        Marker = @('wsl.exe', '--distribution', '{Distro}', '--user', 'root', '--exec', 'test', '-e', '/run/gotune/wsl-restart-needed')
    }
    'Restart-Wsl'           = [ordered]@{
        Shutdown = @('wsl.exe', '--shutdown')
    }
    'Add-DefenderExclusions' = [ordered]@{
        GoEnv = @('go.exe', 'env', 'GOROOT', 'GOTOOLDIR')
    }
}

$ExitFailed = 1
$ExitNotReady = 3
$ExitVerifyFailed = 4
$ExitRebootNeeded = 3010  # ERROR_SUCCESS_REBOOT_REQUIRED, as msiexec says it

function Resolve-NativeCommand {
    # The argument list of one table entry, placeholders filled in.
    param([string]$Step, [string]$Name, [hashtable]$Values)
    $template = $Commands[$Step][$Name]
    if ($null -eq $template) { throw "no command '$Name' for step $Step in the table" }
    $all = @{ Distro = $Distro }
    foreach ($key in $Values.Keys) { $all[$key] = $Values[$key] }
    foreach ($word in $template) {
        if ($word -match '^\{(\w+)\}$') {
            $value = $all[$Matches[1]]
            if ([string]::IsNullOrEmpty($value)) { throw "no value for $word in $Step/$Name" }
            $value
        } else {
            $word
        }
    }
}

function Invoke-NativeCommand {
    # Runs one table entry, its output shown as it comes; returns the exit status.
    # With -DryRun only prints it. stderr is left alone: Windows PowerShell 5.1 turns
    # redirected stderr lines into errors, which $ErrorActionPreference makes fatal.
    param([string]$Step, [string]$Name, [hashtable]$Values = @{})
    $argv = @(Resolve-NativeCommand $Step $Name $Values)
    if ($DryRun) {
        Write-Host "would run: $($argv -join ' ')"
        return 0
    }
    Write-Host "> $($argv -join ' ')"
    $exe = $argv[0]
    $rest = @($argv | Select-Object -Skip 1)
    & $exe @rest | ForEach-Object { [string]$_ -replace "`0", '' } | Out-Host
    return $LASTEXITCODE
}

function Read-NativeCommand {
    # Runs one table entry that only looks (it runs under -DryRun too) and returns its
    # exit status and its non-empty output lines. NULs are dropped: a wsl.exe older than
    # WSL_UTF8 writes UTF-16LE, which reads as ASCII with a NUL after each letter.
    param([string]$Step, [string]$Name, [hashtable]$Values = @{})
    $argv = @(Resolve-NativeCommand $Step $Name $Values)
    Write-Verbose "> $($argv -join ' ')"
    $exe = $argv[0]
    $rest = @($argv | Select-Object -Skip 1)
    $raw = @(& $exe @rest)
    $code = $LASTEXITCODE
    $lines = @($raw | ForEach-Object { ([string]$_ -replace "`0", '').Trim() } | Where-Object { $_ -ne '' })
    return [pscustomobject]@{ ExitCode = $code; Lines = $lines }
}

function Test-Wsl {
    # wsl.exe comes with Windows 10 2004+ and 11 before WSL is installed; then
    # `wsl --status` says how to install it and exits non-zero.
    $exe = $Commands['Test-Wsl']['Status'][0]
    if ($null -eq (Get-Command $exe -CommandType Application -ErrorAction SilentlyContinue)) {
        return $false
    }
    $result = Read-NativeCommand 'Test-Wsl' 'Status'
    return ($result.ExitCode -eq 0)
}

function Install-Wsl {
    $exe = $Commands['Install-Wsl']['Install'][0]
    if ($null -eq (Get-Command $exe -CommandType Application -ErrorAction SilentlyContinue)) {
        throw 'this Windows has no wsl.exe: WSL2 needs Windows 10 version 2004 (build 19041) or later, or Windows 11'
    }
    $code = Invoke-NativeCommand 'Install-Wsl' 'Install'
    if ($code -ne 0) {
        throw "wsl --install --no-distribution failed (exit $code); an old WSL may need 'wsl --update' first"
    }
}

function Test-Distro {
    # `wsl --list` exits non-zero when no distro is installed at all.
    $result = Read-NativeCommand 'Test-Distro' 'List'
    if ($result.ExitCode -ne 0) { return $false }
    return ($result.Lines -contains $Distro)
}

function Install-Distro {
    $code = Invoke-NativeCommand 'Install-Distro' 'Install'
    if ($code -ne 0) { throw "wsl --install --distribution $Distro failed (exit $code)" }
}

function Get-DefaultUser {
    $result = Read-NativeCommand 'Get-DefaultUser' 'Name'
    if ($result.ExitCode -ne 0 -or @($result.Lines).Count -ne 1) {
        throw "cannot read the default user of $Distro (exit $($result.ExitCode))"
    }
    return $result.Lines[0]
}

function Resolve-Source {
    # An explicit -Source that exists on Windows is a wheel or a checkout: pip gets its
    # path inside the distro. Anything else (the default too, even with a folder named
    # gotune here) is a pip requirement, passed as it is.
    $isPath = $false
    if ($SourceGiven) {
        try { $isPath = Test-Path -LiteralPath $Source } catch { $isPath = $false }
    }
    if (-not $isPath) { return $Source }
    $windowsPath = (Resolve-Path -LiteralPath $Source).ProviderPath
    $result = Read-NativeCommand 'Resolve-Source' 'TranslatePath' @{ Source = $windowsPath }
    if ($result.ExitCode -ne 0 -or @($result.Lines).Count -ne 1) {
        throw "wslpath cannot translate $windowsPath in $Distro (exit $($result.ExitCode))"
    }
    return $result.Lines[0]
}

function Test-Gotune {
    # Installed from this same source, and runs.
    param([string]$WslSource)
    $recorded = Read-NativeCommand 'Test-Gotune' 'InstalledSource'
    if ($recorded.ExitCode -ne 0 -or @($recorded.Lines).Count -ne 1) { return $false }
    if ($recorded.Lines[0] -cne $WslSource) { return $false }
    $version = Read-NativeCommand 'Test-Gotune' 'Version'
    return ($version.ExitCode -eq 0)
}

function Install-Gotune {
    param([string]$WslSource)
    foreach ($name in @('AptUpdate', 'AptInstall', 'MakeVenv', 'PipInstall', 'Link', 'RecordSource')) {
        $code = Invoke-NativeCommand 'Install-Gotune' $name @{ Source = $WslSource }
        if ($code -ne 0) { throw "installing gotune in $Distro failed at $name (exit $code)" }
    }
}

function Invoke-GotuneApply {
    # gotune's own exit status: 0 ok, 1 failure, 2 bad command line, 4 applied but
    # verify failed. Its output ends with verify's one-line summary.
    param([string]$User)
    return (Invoke-NativeCommand 'Invoke-GotuneApply' 'Apply' @{ User = $User })
}

function Test-RestartNeeded {
    $result = Read-NativeCommand 'Test-RestartNeeded' 'Marker'
    if ($result.ExitCode -eq 0) { return $true }
    if ($result.ExitCode -eq 1) { return $false }
    throw "cannot check whether WSL must restart (exit $($result.ExitCode))"
}

function Restart-Wsl {
    Write-Host 'gotune changed wsl.conf or .wslconfig: the change takes effect when WSL restarts.'
    Write-Host 'wsl --shutdown stops EVERY running distro; save your work in them first.'
    if (-not $Yes -and -not $DryRun) {
        $answer = Read-Host 'Restart WSL now? [y/N]'
        if ($answer -notmatch '^(y|yes)$') {
            Write-Host 'Not restarted. Run "wsl --shutdown" when it suits you.'
            return
        }
    }
    $code = Invoke-NativeCommand 'Restart-Wsl' 'Shutdown'
    if ($code -ne 0) { throw "wsl --shutdown failed (exit $code)" }
}

function Test-Administrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal $identity
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Add-DefenderExclusions {
    # What helps, and why only this:
    # - Builds inside WSL2 are not what Defender slows: the distro's files live in an
    #   ext4 VHDX that Defender does not look into file by file ("just like Hyper-V, by
    #   design", microsoft/WSL#4163), and gotune keeps GOCACHE and GOMODCACHE there,
    #   never on /mnt/c, which Defender does scan. So nothing is added for the distro's
    #   VHDX folder, nor for the VM's vmmem/vmmemWSL process (it stands for the VM's
    #   memory; no report found says excluding it helps).
    # - Windows tools reading the distro through \\wsl$ or \\wsl.localhost are scanned,
    #   and folder exclusions there were reported not to help (microsoft/WSL#8995). Run
    #   the IDE's Go side inside WSL (VS Code's WSL extension, GoLand's WSL backend).
    # - Go builds on the Windows side (a go.exe on PATH) are scanned file by file. A
    #   process exclusion for go.exe helped where folder exclusions and a path exclusion
    #   of go.exe did not: golang/go#43427, wailsapp/wails#2545 (a build from 60 s to
    #   10 s). Microsoft documents a process exclusion as covering the files that process
    #   opens ("Configure exclusions for files opened by processes"), not its children,
    #   so the compiler and linker go.exe starts, which write the objects, are excluded
    #   too, by their folder: GOTOOLDIR\*.
    # Exclusions weaken protection for what they cover: hence opt-in, and full paths
    # rather than bare names (a bare "link.exe" would cover any program of that name).
    $exe = $Commands['Add-DefenderExclusions']['GoEnv'][0]
    if ($null -eq (Get-Command $exe -CommandType Application -ErrorAction SilentlyContinue)) {
        Write-Host 'Defender: no Windows go.exe on PATH, so nothing to exclude (builds inside WSL2 are not scanned).'
        return
    }
    $goEnv = Read-NativeCommand 'Add-DefenderExclusions' 'GoEnv'
    if ($goEnv.ExitCode -ne 0 -or @($goEnv.Lines).Count -ne 2) {
        throw "go env GOROOT GOTOOLDIR failed (exit $($goEnv.ExitCode))"
    }
    $wanted = @((Join-Path $goEnv.Lines[0] 'bin\go.exe'), (Join-Path $goEnv.Lines[1] '*'))
    $present = @((Get-MpPreference).ExclusionProcess | Where-Object { $null -ne $_ })
    $missing = @($wanted | Where-Object { $present -notcontains $_ })
    if ($missing.Count -eq 0) {
        Write-Host "Defender: process exclusions already there: $($wanted -join ', ')"
        return
    }
    if ($DryRun) {
        Write-Host "would run: Add-MpPreference -ExclusionProcess $($missing -join ', ')"
        return
    }
    Add-MpPreference -ExclusionProcess $missing
    $present = @((Get-MpPreference).ExclusionProcess | Where-Object { $null -ne $_ })
    $still = @($wanted | Where-Object { $present -notcontains $_ })
    if ($still.Count -ne 0) {
        throw "Defender did not keep the exclusions $($still -join ', ') (managed by policy?)"
    }
    Write-Host "Defender: added process exclusions $($missing -join ', ')"
}

function Invoke-Main {
    if ($DefenderExclusions -and -not (Test-Administrator)) {
        throw '-DefenderExclusions needs an elevated PowerShell (Run as administrator)'
    }
    if ($DefenderExclusions) { Add-DefenderExclusions }

    if (-not (Test-Wsl)) {
        Install-Wsl
        if ($DryRun) {
            Write-Host 'Dry run: the next steps need WSL installed.'
            return 0
        }
        Write-Host 'WSL is installed. Restart Windows, then run this script again.'
        return $ExitRebootNeeded
    }
    Write-Host 'WSL: present.'

    if (-not (Test-Distro)) {
        Install-Distro
        if ($DryRun) {
            Write-Host "Dry run: the next steps need $Distro installed."
            return 0
        }
        if (-not (Test-Distro)) {
            # Store-packaged distros are registered at their first start (microsoft/WSL#10646).
            Write-Host "$Distro is downloaded but not set up yet: run 'wsl --install --distribution $Distro',"
            Write-Host 'create your Linux user when asked, type exit, then run this script again.'
            return $ExitNotReady
        }
    }
    Write-Host "${Distro}: present."

    $user = Get-DefaultUser
    if ($user -eq 'root') {
        Write-Host "$Distro has no user of its own yet: run 'wsl --distribution $Distro',"
        Write-Host 'create your Linux user when asked, type exit, then run this script again.'
        return $ExitNotReady
    }
    Write-Host "${Distro}: default user $user."

    $wslSource = Resolve-Source
    if (Test-Gotune $wslSource) {
        Write-Host "gotune: already installed from $wslSource."
    } else {
        Install-Gotune $wslSource
        if (-not $DryRun -and -not (Test-Gotune $wslSource)) {
            throw "gotune is still not runnable in $Distro after installing it from $wslSource"
        }
    }

    $status = Invoke-GotuneApply $user
    if ($status -ne 0 -and $status -ne $ExitVerifyFailed) {
        [Console]::Error.WriteLine("gotune-wsl: gotune apply failed in $Distro (exit $status)")
        return $status
    }
    if ($DryRun) { return 0 }

    if (Test-RestartNeeded) {
        Restart-Wsl
        if (Test-RestartNeeded) {
            Write-Host 'WSL has not restarted yet; gotune''s wsl.conf and .wslconfig changes wait for it.'
        }
    }
    if ($status -eq $ExitVerifyFailed) {
        Write-Host 'gotune applied its changes, but verify found problems (see above).'
    }
    return $status
}

# wsl.exe writes UTF-16LE unless WSL_UTF8 is set (WSL 0.64 and later honour it); Linux
# programs write UTF-8. Read both as UTF-8 while this script runs.
$env:WSL_UTF8 = '1'
$savedEncoding = [Console]::OutputEncoding
try {
    try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { $null = $_ }
    $exitCode = Invoke-Main
} catch {
    [Console]::Error.WriteLine("gotune-wsl: $($_.Exception.Message)")
    $exitCode = $ExitFailed
} finally {
    try { [Console]::OutputEncoding = $savedEncoding } catch { $null = $_ }
}
exit $exitCode
