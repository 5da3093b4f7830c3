"""paramiko and asyncssh against a running ssmgate, gateway style
(user+target@gw, the target's sshd behind it). Prints `check=value` lines
for tests/e2e_python_clients.rs to assert on; exits 0 unless it crashed.
Usage: clients.py PORT KEY LOGIN paramiko|asyncssh"""
import asyncio
import hashlib
import io
import os
import sys

PORT, KEY, LOGIN, WHICH = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
HOST = "127.0.0.1"
DATA = os.urandom(1_500_000)
REASON = "INC-4242 python client check"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def say(key, value):
    print(f"{key}={value}", flush=True)


def paramiko_checks():
    import paramiko

    t = paramiko.Transport((HOST, PORT))
    t.start_client(timeout=20)
    rest = t.auth_publickey(LOGIN, paramiko.Ed25519Key.from_private_key_file(KEY))
    say("paramiko.authenticated", t.is_authenticated())
    say("paramiko.remaining", ",".join(rest) or "-")

    def session(cmd, env=True, data=None):
        ch = t.open_session(timeout=20)
        if env:
            ch.update_environment({"SSMGATE_REASON": REASON})
        ch.exec_command(cmd)
        if data is not None:
            ch.sendall(data)
        ch.shutdown_write()
        out, err = b"", b""
        while True:
            b = ch.recv(65536)
            if not b:
                break
            out += b
        while ch.recv_stderr_ready() or not ch.exit_status_ready():
            b = ch.recv_stderr(65536)
            if not b:
                break
            err += b
        return ch.recv_exit_status(), out, err

    code, _, err = session("true", env=False)
    say("paramiko.noreason.exit", code)
    say("paramiko.noreason.mentions_env", b"SSMGATE_REASON" in err)
    code, out, _ = session("cat", data=DATA)
    say("paramiko.cat.exit", code)
    say("paramiko.cat.same", sha(out) == sha(DATA))
    code, _, _ = session("exit 3")
    say("paramiko.exit3", code)
    ch = t.open_session(timeout=20)
    ch.update_environment({"SSMGATE_REASON": REASON})
    ch.invoke_subsystem("sftp")
    s = paramiko.SFTPClient(ch)
    path = f"/tmp/ssmgate-paramiko-{os.getpid()}.bin"
    s.putfo(io.BytesIO(DATA), path)
    got = io.BytesIO()
    s.getfo(path, got)
    s.remove(path)
    say("paramiko.sftp.same", sha(got.getvalue()) == sha(DATA))
    s.close()
    # A forward (direct-tcpip) carries no environment: refused.
    try:
        t.open_channel("direct-tcpip", ("web-1", 22), ("127.0.0.1", 0), timeout=20)
        say("paramiko.forward.refusal", "opened")
    except paramiko.ChannelException as e:
        say("paramiko.forward.refusal", repr(e.text))
    t.close()




async def asyncssh_checks():
    import asyncssh

    class Client(asyncssh.SSHClient):
        def kbdint_auth_requested(self):
            return ""

        def kbdint_challenge_received(self, name, instructions, lang, prompts):
            return [REASON for _ in prompts]

    conn, _ = await asyncssh.create_connection(
        Client, HOST, PORT, username=LOGIN, client_keys=[KEY],
        known_hosts=None, agent_path=None, password_auth=False,
        # Asked for the reason at login: keyboard-interactive before the key.
        preferred_auth="keyboard-interactive,publickey",
    )
    async with conn as c:
        r = await c.run("cat", input=DATA, encoding=None)
        say("asyncssh.cat.exit", r.exit_status)
        say("asyncssh.cat.same", sha(r.stdout) == sha(DATA))
        r = await c.run("exit 6", check=False)
        say("asyncssh.exit6", r.exit_status)
        r = await c.run("kill -TERM $$", check=False)
        say("asyncssh.signal", r.exit_signal[0] if r.exit_signal else "-")
        path = f"/tmp/ssmgate-asyncssh-{os.getpid()}.bin"
        async with c.start_sftp_client() as s:
            async with s.open(path, "wb") as f:
                await f.write(DATA)
            async with s.open(path, "rb") as f:
                got = await f.read()
            await s.remove(path)
        say("asyncssh.sftp.same", sha(got) == sha(DATA))


if WHICH == "paramiko":
    paramiko_checks()
else:
    asyncio.run(asyncssh_checks())
say("done", True)
