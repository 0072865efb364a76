/**
 * The transfer password every engine's server and client share (rsync's secrets file, rclone's SFTP
 * login): one per namespace transfer, made by createTransferCredentials.
 */
import { randomBytes } from 'node:crypto';

/**
 * A fresh random password: 32 bytes from the OS CSPRNG (crypto.randomBytes), base64url encoded —
 * 43 characters of [A-Za-z0-9_-], never ':' or a newline, safe in the secrets file and the client's
 * password file.
 */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url');
}
