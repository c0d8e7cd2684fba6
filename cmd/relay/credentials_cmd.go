package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/relayhq/relay/internal/credentials"
)

func newCredentialsCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Manage the relay credentials",
		Long: `Manage the credentials stored in credentials.json in the config folder. They authenticate the
relay with its upstream in managed mode: a Sentry organisation trusts a public key (Settings →
Relays), and each relay is identified by a unique relay id.

Several relays may share one key pair as long as their relay ids differ. Once a relay id has
signed in with a key, that id cannot change keys any more.`,
		Args: subcommandArgs,
		RunE: helpIfNoSubcommand,
	}
	cmd.AddCommand(newCredGenerateCmd(c), newCredShowCmd(c), newCredSetCmd(c), newCredRemoveCmd(c))
	return cmd
}

// dumpCredentials prints the public parts, as Relay does.
func (c *cli) dumpCredentials(creds *credentials.Credentials) {
	c.printf("  relay id: %s\n", creds.ID)
	c.printf("  public key: %s\n", creds.PublicKeyString())
}

func newCredGenerateCmd(c *cli) *cobra.Command {
	var overwrite, stdout bool
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate new credentials",
		Long: `Generate a new Ed25519 key pair and a random relay id and store them in credentials.json
(mode 0600). If credentials are already stored this fails unless --overwrite is given.

With --stdout nothing is stored: the credentials are printed as JSON in credentials.json's
format, for example to hand them to a relay through a secret store.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			creds, err := credentials.Generate()
			if err != nil {
				return err
			}
			if stdout {
				b, err := json.Marshal(creds)
				if err != nil {
					return err
				}
				c.printf("%s\n", b)
				return nil
			}
			if err := creds.Save(c.configDir, overwrite); err != nil {
				if errors.Is(err, credentials.ErrExist) {
					return errors.New("aborting because credentials already exist. Pass --overwrite to force.")
				}
				return err
			}
			c.printf("Generated new credentials\n")
			c.dumpCredentials(creds)
			return nil
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace existing credentials instead of failing")
	cmd.Flags().BoolVar(&stdout, "stdout", false, "print the credentials as JSON instead of storing them")
	return cmd
}

func newCredShowCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show the stored credentials",
		Long:  `Print the relay id and the public key of the stored credentials (never the secret key).`,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			creds, err := credentials.Load(c.configDir)
			if err != nil {
				return err
			}
			if creds == nil {
				return fmt.Errorf("no stored credentials in %s (create them with \"relay credentials generate\")", c.configDir)
			}
			c.printf("Credentials:\n")
			c.dumpCredentials(creds)
			return nil
		},
	}
}

func newCredSetCmd(c *cli) *cobra.Command {
	var secretKey, publicKey, id string
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Set new credentials",
		Long: `Store credentials given on the command line. If only a relay id (or only a key pair) is
given, just that part of the stored credentials is replaced. The public key is derived from the
secret key; --public-key is optional and, when given, must belong to the secret key.

If no credentials are stored yet and a part is missing, it is asked for on a terminal (and is
an error otherwise). --id random picks a new random relay id.`,
		Example: `  relay credentials set --id random
  relay credentials set --secret-key <base64url> --public-key <base64url> --id <uuid>`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if f.Changed("public-key") && !f.Changed("secret-key") {
				return usageError{errors.New("--public-key needs --secret-key (the public key belongs to a secret key)")}
			}
			if f.Changed("secret-key") {
				if _, err := credentials.ParseSecretKey(secretKey); err != nil {
					return usageError{fmt.Errorf("--secret-key: %w", err)}
				}
			}
			if f.Changed("public-key") {
				if _, err := credentials.ParsePublicKey(publicKey); err != nil {
					return usageError{fmt.Errorf("--public-key: %w", err)}
				}
			}
			if f.Changed("id") && id != "random" {
				if _, err := credentials.ParseID(id); err != nil {
					return usageError{fmt.Errorf("--id: %w", err)}
				}
			}
			existing, err := credentials.Load(c.configDir)
			if err != nil {
				return err
			}
			prompted := false
			var p *prompter
			ask := func(what string) (*prompter, error) {
				if !c.isTerminal() {
					return nil, usageError{fmt.Errorf("no credentials are stored yet and %s is missing: pass it, or run \"relay credentials generate\"", what)}
				}
				if p == nil {
					p = newPrompter(c.in, c.out)
				}
				prompted = true
				return p, nil
			}

			var sk, pk string
			switch {
			case f.Changed("secret-key"):
				sk, pk = secretKey, publicKey
			case existing != nil:
				sk, pk = existing.SecretKeyString(), existing.PublicKeyString()
			default:
				p, err := ask("--secret-key")
				if err != nil {
					return err
				}
				if sk, err = p.value("secret key", "", func(s string) error {
					_, err := credentials.ParseSecretKey(s)
					return err
				}); err != nil {
					return err
				}
			}

			var rid string
			switch {
			case f.Changed("id") && id == "random":
				rid = uuid.NewString()
			case f.Changed("id"):
				rid = id
			case existing != nil:
				rid = existing.ID.String()
			default:
				p, err := ask("--id")
				if err != nil {
					return err
				}
				random, err := p.confirm("do you want to generate a random relay id", true)
				if err != nil {
					return err
				}
				if random {
					rid = uuid.NewString()
				} else if rid, err = p.value("relay id", "", func(s string) error {
					_, err := credentials.ParseID(s)
					return err
				}); err != nil {
					return err
				}
			}

			creds, err := credentials.Parse(sk, pk, rid)
			if err != nil {
				return usageError{err}
			}
			if existing != nil && existing.ID == creds.ID && existing.SecretKey.Equal(creds.SecretKey) {
				c.printf("Nothing was changed\n")
				if !prompted {
					c.printf("Run `relay credentials remove` first to remove all stored credentials.\n")
				}
				return nil
			}
			if err := creds.Save(c.configDir, true); err != nil {
				return err
			}
			c.printf("Stored updated credentials:\n")
			c.dumpCredentials(creds)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&secretKey, "secret-key", "s", "", "the secret key to set (base64url: 32-byte seed or 64-byte key pair)")
	f.StringVarP(&publicKey, "public-key", "p", "", "the public key to set (checked against the secret key)")
	f.StringVarP(&id, "id", "i", "", `the relay id to set: a UUID, or "random"`)
	return cmd
}

func newCredRemoveCmd(c *cli) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove the stored credentials",
		Long: `Delete credentials.json from the config folder. On a terminal it asks for confirmation unless
--yes is given; without a terminal --yes is required.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			creds, err := credentials.Load(c.configDir)
			if err != nil {
				return err
			}
			if creds == nil {
				c.printf("No credentials\n")
				return nil
			}
			if !yes {
				if !c.isTerminal() {
					return usageError{errors.New("not removing credentials without confirmation: pass --yes")}
				}
				ok, err := newPrompter(c.in, c.out).confirm("Remove stored credentials?", false)
				if err != nil {
					return err
				}
				if !ok {
					c.printf("Nothing was removed\n")
					return nil
				}
			}
			if _, err := credentials.Remove(c.configDir); err != nil {
				return err
			}
			c.printf("Credentials removed\n")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
