package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newCompletionsCmd(c *cli) *cobra.Command {
	var shell string
	cmd := &cobra.Command{
		Use:   "generate-completions",
		Short: "Generate a shell completion script",
		Long: `Print a completion script for bash, zsh, fish or powershell. Without --format the shell is
guessed from $SHELL (bash if that fails).`,
		Example: `  relay generate-completions -f bash > /etc/bash_completion.d/relay`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if shell == "" {
				shell = "bash"
				if sh, ok := c.lookupEnv("SHELL"); ok {
					switch b := filepath.Base(sh); b {
					case "bash", "zsh", "fish":
						shell = b
					}
				}
			}
			root := cmd.Root()
			var err error
			switch shell {
			case "bash":
				err = root.GenBashCompletionV2(c.out, true)
			case "zsh":
				err = root.GenZshCompletion(c.out)
			case "fish":
				err = root.GenFishCompletion(c.out, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(c.out)
			default:
				return usageError{fmt.Errorf("--format: %q is not one of bash, zsh, fish, powershell", shell)}
			}
			if err != nil {
				return fmt.Errorf("write completions: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&shell, "format", "f", "", "the shell: bash, zsh, fish or powershell")
	return cmd
}
